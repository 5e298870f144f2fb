// Package migrate creates couponpush's MySQL schema and keeps it current.
//
// Migrations are SQL files embedded from sql/, named NNNN_description.sql,
// one statement per file, applied in version order. Up takes a named lock
// (GET_LOCK) on one pinned connection for the whole run, so any number of
// workers starting together apply each version exactly once; applied
// versions are recorded in schema_migrations. Every statement is written to
// be re-runnable (CREATE TABLE IF NOT EXISTS, ...), so a crash between a
// statement and its record is repaired by the next run.
package migrate
