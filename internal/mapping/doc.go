// Package mapping turns a Mailchimp member into the customer's record.
//
// A mapping is an ordered list of output keys, each taking the value at a dot
// path in the member ("merge_fields.FNAME", "location.country_code",
// "tags.0.name"). The mapping also knows which Mailchimp fields it reads, so
// the client asks Mailchimp for only those (`fields=`), which cuts the bytes
// on the wire several-fold.
package mapping
