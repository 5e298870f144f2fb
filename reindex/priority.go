package reindex

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"couponpush/queue"
)

// querier is what stampPriorities reads with: a *sql.DB or *sql.Tx.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// stampPriorities sets each entry's Priority from its template's current
// priority, in one plain (non-locking) read, so that a rebuilt or repaired
// reminder is ordered as its template now says. A template that is gone
// leaves its entries normal, as does a priority this version does not know.
func stampPriorities(ctx context.Context, q querier, page []queue.Entry) error {
	ids := map[int64]bool{}
	args := []any{}
	for _, e := range page {
		if !ids[e.TemplateID] {
			ids[e.TemplateID] = true
			args = append(args, e.TemplateID)
		}
	}
	if len(args) == 0 {
		return nil
	}
	rows, err := q.QueryContext(ctx, "SELECT id, priority FROM templates WHERE id IN (?"+strings.Repeat(",?", len(args)-1)+")", args...)
	if err != nil {
		return fmt.Errorf("read template priorities: %w", err)
	}
	defer rows.Close()
	prio := map[int64]queue.Priority{}
	for rows.Next() {
		var id int64
		var p string
		if err := rows.Scan(&id, &p); err != nil {
			return fmt.Errorf("read template priorities: %w", err)
		}
		prio[id], _ = queue.ParsePriority(p)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read template priorities: %w", err)
	}
	for i := range page {
		page[i].Priority = prio[page[i].TemplateID]
	}
	return nil
}
