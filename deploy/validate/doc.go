// Package validate checks the deployment files of deploy/: the Kubernetes
// manifests (built with kustomize as `kubectl apply -k` builds them, each
// object decoded strictly into the Kubernetes API types), the compose file
// (loaded and checked against the compose specification's schema, as
// `docker compose config` does) and the Dockerfile's build line, and the
// invariants that tie them to the agent: ports, probes, load balancing,
// secrets. It is a module of its own, so that none of its dependencies
// reach the agent's binary; `make test-deploy` runs it.
package validate
