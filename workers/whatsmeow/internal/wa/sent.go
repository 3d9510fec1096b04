package wa

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// SentMessages maps WhatsApp message ids of messages this instance sent to
// the gateway's messageId, in the instance schema, so receipts become
// message.status events for the gateway's id, and a send redelivered after
// a worker restart reuses its WhatsApp id (recipients drop the duplicate).
type SentMessages struct{ db *sql.DB }

// sentRetention is how long the mapping is kept: receipts come within days.
const sentRetention = "30 days"

// Migrate creates the table if missing and forgets old rows.
func (s *SentMessages) Migrate(ctx context.Context) error {
	stmts := []string{
		`create table if not exists wgs_sent_messages (
			provider_id text primary key,
			message_id  text not null,
			chat        text not null,
			created_at  timestamptz not null default now()
		)`,
		`create index if not exists wgs_sent_messages_message_id on wgs_sent_messages (message_id)`,
		`delete from wgs_sent_messages where created_at < now() - interval '` + sentRetention + `'`,
	}
	for _, q := range stmts {
		if _, err := s.db.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("prepare wgs_sent_messages: %w", err)
		}
	}
	return nil
}

// Put records a WhatsApp id for a gateway messageId.
func (s *SentMessages) Put(ctx context.Context, providerID, messageID, chat string) error {
	_, err := s.db.ExecContext(ctx,
		`insert into wgs_sent_messages (provider_id, message_id, chat) values ($1, $2, $3) on conflict (provider_id) do nothing`,
		providerID, messageID, chat)
	if err != nil {
		return fmt.Errorf("record sent message %s: %w", providerID, err)
	}
	return nil
}

// ProviderID is the WhatsApp id already used for a gateway messageId ("" when none).
func (s *SentMessages) ProviderID(ctx context.Context, messageID string) (string, error) {
	var id string
	err := s.db.QueryRowContext(ctx, `select provider_id from wgs_sent_messages where message_id = $1 order by created_at limit 1`, messageID).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("look up message %s: %w", messageID, err)
	}
	return id, nil
}

// MessageID is the gateway messageId of a WhatsApp id ("" when not sent by this instance through the gateway).
func (s *SentMessages) MessageID(ctx context.Context, providerID string) (string, error) {
	var id string
	err := s.db.QueryRowContext(ctx, `select message_id from wgs_sent_messages where provider_id = $1`, providerID).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("look up provider message %s: %w", providerID, err)
	}
	return id, nil
}
