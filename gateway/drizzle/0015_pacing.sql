ALTER TABLE "instances" ADD COLUMN "pacing" jsonb;--> statement-breakpoint
ALTER TABLE "instances" ADD COLUMN "pace_cursor" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "instances" ADD COLUMN "paused_until" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "instances" ADD COLUMN "paused_reason" text;--> statement-breakpoint
ALTER TABLE "commands" ADD COLUMN "not_before" timestamp with time zone;--> statement-breakpoint
CREATE INDEX "commands_scheduled_idx" ON "commands" USING btree ("not_before") WHERE "commands"."status" = 'pending' and "commands"."not_before" is not null;--> statement-breakpoint
CREATE INDEX "commands_instance_paced_idx" ON "commands" USING btree ("instance_id","not_before") WHERE "commands"."not_before" is not null;