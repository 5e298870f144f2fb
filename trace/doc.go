// Package trace follows one user's reminders from MySQL into the Redis
// queues: each subscription row joined with the entries of the user's
// record in every queue the recorded layout may hold it in (two while N
// changes), with a note where the two disagree in a way an operator may
// act on. scheduler-admin's user command and the console's user view both
// print what Read returns.
//
// It only reads: nothing here changes MySQL or Redis.
package trace
