CREATE TABLE "billing_events" (
	"id" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "billing_events_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"type" text NOT NULL,
	"user_id" integer NOT NULL,
	"tenant_email" text,
	"data" jsonb NOT NULL,
	"source" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"status" "delivery_status" DEFAULT 'pending' NOT NULL,
	"attempts" integer DEFAULT 0 NOT NULL,
	"next_attempt_at" timestamp with time zone DEFAULT now() NOT NULL,
	"locked_until" timestamp with time zone,
	"claimed_by" integer,
	"last_status_code" integer,
	"last_latency_ms" integer,
	"last_error" text,
	"response_excerpt" text,
	"completed_at" timestamp with time zone
);
--> statement-breakpoint
CREATE UNIQUE INDEX "billing_events_source_key" ON "billing_events" USING btree ("source");--> statement-breakpoint
CREATE INDEX "billing_events_due_idx" ON "billing_events" USING btree ("next_attempt_at") WHERE "billing_events"."status" = 'pending';--> statement-breakpoint
CREATE INDEX "billing_events_type_created_idx" ON "billing_events" USING btree ("type","created_at");--> statement-breakpoint
-- Wakes the billing dispatchers once per statement that records billing events, wherever it runs.
CREATE FUNCTION wgs_notify_billing_events() RETURNS trigger AS $$
BEGIN
  PERFORM pg_notify('wgs_billing_events', '');
  RETURN NULL;
END;
$$ LANGUAGE plpgsql;
--> statement-breakpoint
CREATE TRIGGER billing_events_notify
AFTER INSERT ON billing_events
FOR EACH STATEMENT EXECUTE FUNCTION wgs_notify_billing_events();
