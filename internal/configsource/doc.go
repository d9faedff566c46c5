// Package configsource fetches the configuration file from where the
// deployment keeps it: a local path, or an S3 object (s3://bucket/key), as a
// container on ECS Fargate or Kubernetes typically has no config file of its
// own. It only fetches bytes; package config parses them. A local path may
// be a directory of fragments (config.LoadDir); an S3 location is always one
// object.
//
// Every error is a *config.Error naming the location, so that main treats a
// config it cannot read like a config it cannot parse (exit code 2), and the
// message says what to check.
package configsource
