ALTER TABLE "nodes" ADD COLUMN "reported_millicpu" integer;--> statement-breakpoint
ALTER TABLE "nodes" ADD COLUMN "reported_memory_bytes" bigint;--> statement-breakpoint
ALTER TABLE "nodes" ADD COLUMN "status_reason" text;