-- Exact polling cursors and a tenant's own index on the event log
-- (events/log.ts eventPage): each event records its transaction (tx, for the
-- (tx, id) order of polling pages) and its instance's tenant (user_id, copied
-- from the instance by a trigger on every insert, wherever the event comes
-- from; an instance never changes tenant). Existing rows: the tenant is filled
-- in here, and they all get this migration's transaction id (all committed
-- before any new event, so their order among themselves stays the id order).
ALTER TABLE "events" ADD COLUMN "user_id" integer;--> statement-breakpoint
ALTER TABLE "events" ADD COLUMN "tx" "xid8" DEFAULT pg_current_xact_id() NOT NULL;--> statement-breakpoint
UPDATE "events" e SET "user_id" = i."user_id" FROM "instances" i WHERE i."id" = e."instance_id";--> statement-breakpoint
CREATE FUNCTION wgs_event_owner() RETURNS trigger AS $$
BEGIN
  SELECT i.user_id INTO NEW.user_id FROM instances i WHERE i.id = NEW.instance_id;
  RETURN NEW;
END;
$$ LANGUAGE plpgsql;
--> statement-breakpoint
CREATE TRIGGER events_owner
BEFORE INSERT ON events
FOR EACH ROW EXECUTE FUNCTION wgs_event_owner();
--> statement-breakpoint
CREATE INDEX "events_instance_tx_idx" ON "events" USING btree ("instance_id","tx","id");--> statement-breakpoint
CREATE INDEX "events_user_tx_idx" ON "events" USING btree ("user_id","tx","id");--> statement-breakpoint
CREATE INDEX "events_user_id_idx" ON "events" USING btree ("user_id","id");
