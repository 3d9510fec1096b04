CREATE TABLE "media" (
	"id" text PRIMARY KEY NOT NULL,
	"instance_id" integer NOT NULL,
	"mimetype" text NOT NULL,
	"filename" text,
	"size" integer NOT NULL,
	"data" "bytea" NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
ALTER TABLE "media" ADD CONSTRAINT "media_instance_id_instances_id_fk" FOREIGN KEY ("instance_id") REFERENCES "public"."instances"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "media_instance_idx" ON "media" USING btree ("instance_id");--> statement-breakpoint
CREATE INDEX "events_received_message_idx" ON "events" USING btree ("instance_id",("data"->>'id')) WHERE "events"."type" = 'message.received';