ALTER TABLE "events" ADD COLUMN "tx" "xid8" DEFAULT pg_current_xact_id() NOT NULL;--> statement-breakpoint
CREATE INDEX "events_instance_tx_idx" ON "events" USING btree ("instance_id","tx","id");--> statement-breakpoint
CREATE INDEX "events_tx_idx" ON "events" USING btree ("tx","id");