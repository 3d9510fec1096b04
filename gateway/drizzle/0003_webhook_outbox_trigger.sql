-- The outbox is filled in the transaction that records an event, wherever the
-- event is inserted: one delivery per enabled subscription whose filter takes
-- the event. A webhook.failed event is not sent to the subscription it is about.
CREATE FUNCTION wgs_enqueue_webhook_deliveries() RETURNS trigger AS $$
BEGIN
  INSERT INTO webhook_deliveries (webhook_id, event_id)
  SELECT w.id, NEW.id
  FROM webhooks w
  WHERE w.instance_id = NEW.instance_id
    AND w.enabled
    AND (w.events IS NULL OR NEW.type = ANY (w.events))
    AND NOT (NEW.type = 'webhook.failed' AND (NEW.data ->> 'webhookId')::int = w.id);
  IF FOUND THEN
    PERFORM pg_notify('wgs_webhook_deliveries', '');
  END IF;
  RETURN NULL;
END;
$$ LANGUAGE plpgsql;
--> statement-breakpoint
CREATE TRIGGER events_enqueue_webhook_deliveries
AFTER INSERT ON events
FOR EACH ROW EXECUTE FUNCTION wgs_enqueue_webhook_deliveries();
