CREATE TABLE "waba_accounts" (
	"instance_id" integer PRIMARY KEY NOT NULL,
	"user_id" integer NOT NULL,
	"phone_number_id" text NOT NULL,
	"waba_id" text NOT NULL,
	"access_token_sealed" text NOT NULL,
	"access_token_last4" text NOT NULL,
	"app_secret_sealed" text NOT NULL,
	"verify_token_sealed" text NOT NULL,
	"templates" jsonb,
	"templates_synced_at" timestamp with time zone,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
ALTER TABLE "waba_accounts" ADD CONSTRAINT "waba_accounts_instance_id_instances_id_fk" FOREIGN KEY ("instance_id") REFERENCES "public"."instances"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "waba_accounts" ADD CONSTRAINT "waba_accounts_user_id_users_id_fk" FOREIGN KEY ("user_id") REFERENCES "public"."users"("id") ON DELETE restrict ON UPDATE no action;--> statement-breakpoint
CREATE UNIQUE INDEX "waba_accounts_user_phone_number_id_key" ON "waba_accounts" USING btree ("user_id","phone_number_id");--> statement-breakpoint
CREATE INDEX "waba_accounts_phone_number_id_idx" ON "waba_accounts" USING btree ("phone_number_id");