// Package advice is the one shape in which an error that retrying cannot
// fix says what failed and what a person should do about it.
//
// The packages that know their errors (the Mailchimp client, the target
// sink) write the advice once, next to the error type, and use it in the
// error's own message. The packages that tell a person (the alert policy,
// check) read it back by walking an error chain, without importing the
// client packages: this type is all they share.
package advice
