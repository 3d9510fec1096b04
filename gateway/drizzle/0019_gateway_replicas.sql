CREATE TABLE "gateway_replicas" (
	"owner_id" integer PRIMARY KEY NOT NULL,
	"replica_id" text NOT NULL,
	"worker_url" text NOT NULL,
	"started_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
ALTER TABLE "instances" ADD COLUMN "op_owner" integer;--> statement-breakpoint
ALTER TABLE "instances" ADD COLUMN "worker_owner" integer;--> statement-breakpoint
ALTER TABLE "instances" ADD COLUMN "worker_socket" text;--> statement-breakpoint
ALTER TABLE "instances" ADD COLUMN "started_by" integer;