-- A person's own VM limits (NULL: the configured default; 0: no limit).
ALTER TABLE users ADD COLUMN max_vms INTEGER;
ALTER TABLE users ADD COLUMN max_vm_vcpus INTEGER;
ALTER TABLE users ADD COLUMN max_vm_memory_mib BIGINT;
