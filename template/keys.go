package template

import "strconv"

// keys builds the Redis keys of templates (the other coupon keys are built
// in coupon/keys.go, under the same prefix).
//
//	<p>:tpl:<T>  string: template T as JSON (the Redis cache tier)
type keys struct{ prefix string }

func (k keys) template(id int64) string {
	return k.prefix + ":tpl:" + strconv.FormatInt(id, 10)
}
