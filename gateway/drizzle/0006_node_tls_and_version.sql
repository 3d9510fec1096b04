ALTER TABLE "nodes" ADD COLUMN "reported_version" text;--> statement-breakpoint
ALTER TABLE "nodes" ADD COLUMN "reported_workers" integer;--> statement-breakpoint
ALTER TABLE "nodes" ADD COLUMN "tls_ca" text;--> statement-breakpoint
ALTER TABLE "nodes" ADD COLUMN "tls_cert" text;--> statement-breakpoint
ALTER TABLE "nodes" ADD COLUMN "tls_key_encrypted" text;