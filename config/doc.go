// Package config holds the worker's one configuration struct, how it is
// loaded and how it is checked.
//
// A value comes from, in order of precedence: a command-line flag, an
// environment variable COUPONPUSH_<NAME>, the JSON file named by -config (or
// COUPONPUSH_CONFIG), and finally the default. A zero value always means
// "use the default", so a file or variable that leaves a field out and one
// that sets it to zero mean the same. LoadWorker applies all of that and
// then Validate, which reports every problem at once.
//
// The JSON file is decoded strictly: an unknown field, a value of the wrong
// type or a duration given as a number is an error that names the field.
// Durations are strings in time.ParseDuration form ("60s", "1.5s", "20ms").
package config
