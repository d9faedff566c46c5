// Package config reads chimport's YAML configuration: which Mailchimp audiences
// to sync, where to send the records, and how often.
//
// Load (or Parse) builds a Config in one pass and reports every problem it
// finds at once, each naming the field it is about, so a user fixes a file in
// one round instead of one error per run:
//
//  1. The file is parsed into a yaml.Node. Anchors, aliases and << merge keys
//     are resolved into a plain tree.
//  2. ${NAME} in string values (never in keys) is replaced by the variable's
//     value, read only through the lookupEnv function the caller passes; $$ is
//     a literal $. Every unset variable is reported, not just the first.
//     A variable that is set but empty is fine here and fails "required" later.
//  3. Keys are checked against the Go structs' yaml tags by reflection, so a
//     field added to a struct is known to the checker with no other change.
//     Unknown keys at any depth are reported with their line.
//  4. The top-level defaults block is laid under every connection: mappings
//     merge key by key (the connection wins), scalars and lists come whole
//     from the connection when it has them, and mapping (the record shape) is
//     replaced whole, never mixed. A connection that writes ~ for a key does
//     not inherit it: it falls back to the built-in default, or for a header,
//     drops it.
//  5. Each connection starts from Connection{}.WithDefaults() and the file is
//     decoded on top of it, so a value written in the file wins even when it
//     is zero (settle: 0s means "no settle delay"). Type errors name the field.
//  6. Validate checks the result and every problem found so far is returned
//     in one *Error, sorted by where it is in the file.
//  7. A connection whose list_id is a sequence of ids becomes one
//     sub-connection per id (Connection.Sub), named <name>.<list id>; one
//     whose list_id is "*" (AllLists) stays one connection, and the commands
//     make its sub-connections from the audiences they discover. Either way
//     the built-in mapping gains list_id, so that one person's records in
//     two audiences do not overwrite each other (see Warnings).
//
// LoadDir (and Load given a directory) reads a directory of fragments: each
// file is parsed, expanded and checked for unknown keys on its own (anchors
// do not reach across files), then the files are joined and loaded as one,
// and every problem names its file (Problem.Source).
//
// Secret values (API keys, access tokens, header values) are of type Secret,
// which prints as "[redacted]" through fmt, encoding/json, YAML and
// log/slog, and never appears in a problem message. Code that must send a
// secret calls Reveal.
package config
