CREATE INDEX "messages_instance_created_idx" ON "messages" USING btree ("instance_id","created_at");--> statement-breakpoint
-- Live event streams (events/stream-hub.ts): every committed event wakes the
-- replicas' stream hubs. The payload is the instance id; Postgres folds equal
-- payloads of one transaction into one notification, so a batch of events of
-- one instance is one wake-up. NOTIFY is delivered at commit.
CREATE FUNCTION wgs_notify_event_stream() RETURNS trigger AS $$
BEGIN
  PERFORM pg_notify('wgs_events', NEW.instance_id::text);
  RETURN NULL;
END;
$$ LANGUAGE plpgsql;
--> statement-breakpoint
CREATE TRIGGER events_notify_stream
AFTER INSERT ON events
FOR EACH ROW EXECUTE FUNCTION wgs_notify_event_stream();
