package statestore

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/stdlib"
)

// OpenPool opens the database/sql pool (pgx stdlib driver, no cgo) that
// whatsmeow's sqlstore and the worker's own tables use; every connection
// has search_path set to the instance's schema. Only open it while holding
// the Lock.
func OpenPool(ctx context.Context, dsn, schema string) (*sql.DB, error) {
	cfg, err := ConnConfig(dsn, schema, "wgs-whatsmeow")
	if err != nil {
		return nil, err
	}
	cfg.ConnectTimeout = DefaultConnectTimeout
	db := stdlib.OpenDB(*cfg)
	db.SetMaxOpenConns(4)
	db.SetMaxIdleConns(2)
	db.SetConnMaxIdleTime(5 * time.Minute)
	pingCtx, cancel := context.WithTimeout(ctx, DefaultConnectTimeout)
	defer cancel()
	if err := db.PingContext(pingCtx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open the state pool: %w", redact(err, dsn))
	}
	return db, nil
}
