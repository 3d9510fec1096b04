ALTER TABLE "nodes" ADD COLUMN "draining_since" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "instances" ADD COLUMN "target_node_id" integer;--> statement-breakpoint
ALTER TABLE "instances" ADD CONSTRAINT "instances_target_node_id_nodes_id_fk" FOREIGN KEY ("target_node_id") REFERENCES "public"."nodes"("id") ON DELETE restrict ON UPDATE no action;