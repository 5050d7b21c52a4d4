"""The simulator of the kernel's vmap VA allocator (Linux 6.7 global locks and 6.9 vmap nodes)."""
