package coupon

import "strconv"

// keys builds every Redis key of the coupon core but the template cache's
// (<p>:tpl:<T>, built in template/keys.go). Each multi-key-free Lua
// script touches one key; keys that scripts touch carry a hash tag, so a
// script's KEYS always lie on one Redis Cluster slot.
//
//	<p>:{<p>:t<T>:s<I>}  hash: sub-stock I of template T:
//	                      left   coupons still to give from this sub-stock
//	                      quota  everything ever credited to it
//	                      seq    takes so far (the take's number is stored
//	                             in its coupon row)
//	                      a:<ADD>         marker: stock add ADD applied
//	                      h:<REQUEST_ID>  hold of a claim in flight:
//	                                      "user|slot|seq|redis ms"
//	<p>:{<p>:t<T>:u<U>}  hash: user U's claims of template T:
//	                      r:<REQUEST_ID>  "p|slot|redis ms" reserved, or
//	                                      "d|slot|coupon id" done
//	                      s:<SLOT>        the request holding slot SLOT
//	<p>:coupon:ids       string: the last coupon id handed out (blocks of
//	                     ids are reserved with INCRBY)
type keys struct{ prefix string }

func (k keys) sub(template int64, i int) string {
	tag := k.prefix + ":t" + strconv.FormatInt(template, 10) + ":s" + strconv.Itoa(i)
	return k.prefix + ":{" + tag + "}"
}

func (k keys) user(template, user int64) string {
	tag := k.prefix + ":t" + strconv.FormatInt(template, 10) + ":u" + strconv.FormatInt(user, 10)
	return k.prefix + ":{" + tag + "}"
}

func (k keys) couponIDs() string { return k.prefix + ":coupon:ids" }
