// Package pgtext makes text and JSON storable by PostgreSQL and measures them the way
// PostgreSQL does, so that size limits are enforced where values are produced (a task's
// result, checkpoint, progress and messages) instead of failing later, in the database, in
// the middle of the journal.
//
// PostgreSQL's text types reject NUL characters and invalid UTF-8; jsonb rejects the escape
// \u0000 and unpaired surrogates, normalises numbers (1e3 is stored as 1000) and prints with
// spaces after ':' and ','. A size check on the raw bytes is therefore wrong both ways: the
// stored text of a 60 KiB array of small numbers is longer than 64 KiB, and "1e100000" is 8
// bytes that PostgreSQL refuses to store at all.
package pgtext
