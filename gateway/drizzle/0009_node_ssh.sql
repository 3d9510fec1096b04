ALTER TABLE "nodes" ADD COLUMN "ssh_key_encrypted" text;--> statement-breakpoint
ALTER TABLE "nodes" ADD COLUMN "ssh_host_key" text;