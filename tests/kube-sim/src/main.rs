//! kube-sim binary: `kube-sim --listen ADDR --kubeconfig FILE [--tls]`.
fn main() {}
