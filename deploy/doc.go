// Package deploy holds chimport's deployment files and the tests that keep
// them honest: the Terraform for ECS Fargate (terraform/), the Kubernetes
// manifests (kubernetes/), and checks on the Dockerfile at the repository
// root. There is no Go code to import here; `go test ./deploy/` parses every
// file with the same parsers Terraform and Kubernetes use and checks the
// properties the deployment depends on (resources, keys, least privilege,
// non-root containers), since no cloud, cluster or Docker engine is needed
// to catch those mistakes.
package deploy
