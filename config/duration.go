package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"time"
)

// Duration is a time.Duration that reads and writes JSON as a string in
// time.ParseDuration form, such as "60s" or "1.5s". A JSON number is
// rejected rather than guessed at (nanoseconds? seconds?).
type Duration time.Duration

// Duration returns d as a time.Duration.
func (d Duration) Duration() time.Duration { return time.Duration(d) }

// String formats d like time.Duration does ("1m0s").
func (d Duration) String() string { return time.Duration(d).String() }

// MarshalJSON writes d as a string such as "1m0s".
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON reads a string such as "60s". null leaves d unchanged. The
// error for anything else is a *json.UnmarshalTypeError, so the decoder adds
// the name of the field that held it.
func (d *Duration) UnmarshalJSON(b []byte) error {
	if bytes.Equal(b, []byte("null")) {
		return nil
	}
	var s string
	if len(b) == 0 || b[0] != '"' || json.Unmarshal(b, &s) != nil {
		return &json.UnmarshalTypeError{
			Value: jsonKind(b) + ` (want a duration string such as "60s")`,
			Type:  reflect.TypeFor[Duration](),
		}
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return &json.UnmarshalTypeError{
			Value: "string " + strconv.Quote(s) + ` (want a duration such as "60s")`,
			Type:  reflect.TypeFor[Duration](),
		}
	}
	*d = Duration(v)
	return nil
}

// Set parses s with time.ParseDuration; it makes *Duration a flag.Value.
func (d *Duration) Set(s string) error {
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("want a duration such as \"60s\": %w", err)
	}
	*d = Duration(v)
	return nil
}

// jsonKind names the JSON value in b for an error message.
func jsonKind(b []byte) string {
	if len(b) == 0 {
		return "nothing"
	}
	switch b[0] {
	case '{':
		return "object"
	case '[':
		return "array"
	case 't', 'f':
		return "bool"
	case '"':
		return "string"
	}
	if len(b) > 20 {
		b = b[:20]
	}
	return "number " + string(b)
}
