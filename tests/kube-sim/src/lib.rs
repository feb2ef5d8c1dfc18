//! kube-sim: an in-memory Kubernetes API server for tests (not a cluster; see README.md).
