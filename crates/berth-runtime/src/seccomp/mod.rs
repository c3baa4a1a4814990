//! seccomp profiles compiled to BPF, cached.
