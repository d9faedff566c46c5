package config

import _ "embed"

//go:embed example.yaml
var example string

// Example returns a complete, commented configuration with every setting at
// its default. It parses once MAILCHIMP_API_KEY and TARGET_API_KEY are set.
func Example() string { return example }
