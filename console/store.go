package console

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"
)

// SQLStore is the console's Store on MySQL: the templates, subscriptions
// and coupons tables, and the console_audit table (migration 0008).
type SQLStore struct{ db *sql.DB }

// NewSQLStore returns the store on db (opened with parseTime=true).
func NewSQLStore(db *sql.DB) *SQLStore { return &SQLStore{db: db} }

// maxMessage bounds an audit message (the column's width).
const maxMessage = 1000

// placeholders is "?,?,...", n of them, and ids as arguments.
func placeholders(ids []int64) (string, []any) {
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	return strings.TrimSuffix(strings.Repeat("?,", len(ids)), ","), args
}

// LiveTemplates lists up to max templates whose grab end is after since,
// by grab start.
func (s *SQLStore) LiveTemplates(ctx context.Context, since time.Time, max int) ([]Template, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, name, stock, grab_start, grab_end FROM templates
		WHERE grab_end > ? ORDER BY grab_start, id LIMIT ?`, since.UTC(), max)
	if err != nil {
		return nil, fmt.Errorf("mysql: live templates: %w", err)
	}
	defer rows.Close()
	var out []Template
	for rows.Next() {
		var t Template
		if err := rows.Scan(&t.ID, &t.Name, &t.Stock, &t.GrabStart, &t.GrabEnd); err != nil {
			return nil, fmt.Errorf("mysql: live templates: %w", err)
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("mysql: live templates: %w", err)
	}
	return out, nil
}

// Subscribers counts the subscriptions of each template in ids by status.
func (s *SQLStore) Subscribers(ctx context.Context, ids []int64) (map[int64]Subscribers, error) {
	out := map[int64]Subscribers{}
	if len(ids) == 0 {
		return out, nil
	}
	in, args := placeholders(ids)
	rows, err := s.db.QueryContext(ctx, `SELECT template_id, status, COUNT(*), MIN(push_at) FROM subscriptions
		WHERE template_id IN (`+in+`) GROUP BY template_id, status`, args...)
	if err != nil {
		return nil, fmt.Errorf("mysql: subscribers: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, n int64
		var status string
		var first time.Time
		if err := rows.Scan(&id, &status, &n, &first); err != nil {
			return nil, fmt.Errorf("mysql: subscribers: %w", err)
		}
		x := out[id]
		switch status {
		case "pending":
			x.Pending, x.FirstPending = n, first
		case "sent":
			x.Sent = n
		case "cancelled":
			x.Cancelled = n
		}
		out[id] = x
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("mysql: subscribers: %w", err)
	}
	return out, nil
}

// Issued counts the coupons of each template in ids.
func (s *SQLStore) Issued(ctx context.Context, ids []int64) (map[int64]int64, error) {
	out := map[int64]int64{}
	if len(ids) == 0 {
		return out, nil
	}
	in, args := placeholders(ids)
	rows, err := s.db.QueryContext(ctx, `SELECT template_id, COUNT(*) FROM coupons WHERE template_id IN (`+in+`) GROUP BY template_id`, args...)
	if err != nil {
		return nil, fmt.Errorf("mysql: issued coupons: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, n int64
		if err := rows.Scan(&id, &n); err != nil {
			return nil, fmt.Errorf("mysql: issued coupons: %w", err)
		}
		out[id] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("mysql: issued coupons: %w", err)
	}
	return out, nil
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// BeginAudit writes a's entry and returns its id.
func (s *SQLStore) BeginAudit(ctx context.Context, a Audit) (int64, error) {
	res, err := s.db.ExecContext(ctx, `INSERT INTO console_audit (at, operator, action, detail, result, message) VALUES (?, ?, ?, ?, ?, ?)`,
		a.At.UTC(), clip(a.Operator, 64), clip(a.Action, 32), clip(a.Detail, 255), a.Result, clip(a.Message, maxMessage))
	if err != nil {
		return 0, fmt.Errorf("mysql: write audit entry: %w", err)
	}
	id, err := res.LastInsertId()
	if err != nil {
		return 0, fmt.Errorf("mysql: write audit entry: %w", err)
	}
	return id, nil
}

// SettleAudit sets entry id's result and message.
func (s *SQLStore) SettleAudit(ctx context.Context, id int64, result, message string) error {
	if _, err := s.db.ExecContext(ctx, `UPDATE console_audit SET result = ?, message = ?, settled_at = UTC_TIMESTAMP(3) WHERE id = ?`,
		result, clip(message, maxMessage), id); err != nil {
		return fmt.Errorf("mysql: settle audit entry %d: %w", id, err)
	}
	return nil
}

// AuditLog lists the newest entries first, up to limit.
func (s *SQLStore) AuditLog(ctx context.Context, limit int) ([]Audit, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, at, operator, action, detail, result, message FROM console_audit ORDER BY id DESC LIMIT ?`, limit)
	if err != nil {
		return nil, fmt.Errorf("mysql: read audit log: %w", err)
	}
	defer rows.Close()
	var out []Audit
	for rows.Next() {
		var a Audit
		if err := rows.Scan(&a.ID, &a.At, &a.Operator, &a.Action, &a.Detail, &a.Result, &a.Message); err != nil {
			return nil, fmt.Errorf("mysql: read audit log: %w", err)
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("mysql: read audit log: %w", err)
	}
	return out, nil
}
