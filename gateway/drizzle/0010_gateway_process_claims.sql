CREATE SEQUENCE "public"."gateway_process_ids" INCREMENT BY 1 MINVALUE 1 MAXVALUE 2147483647 START WITH 1 CACHE 1 CYCLE;--> statement-breakpoint
ALTER TABLE "nodes" ADD COLUMN "drain_owner" integer;--> statement-breakpoint
ALTER TABLE "instances" ADD COLUMN "move_owner" integer;--> statement-breakpoint
ALTER TABLE "webhook_deliveries" ADD COLUMN "claimed_by" integer;