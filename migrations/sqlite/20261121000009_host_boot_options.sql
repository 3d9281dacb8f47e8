-- A host's boot options: the system template (an iPXE script served once
-- when the host is marked) and the unattended template (the installer's
-- answer file). Deleting a template in use is refused by the application;
-- SET NULL is the database's last word.
ALTER TABLE hosts ADD COLUMN system_template_id INTEGER REFERENCES templates (id) ON DELETE SET NULL;
ALTER TABLE hosts ADD COLUMN unattended_template_id INTEGER REFERENCES templates (id) ON DELETE SET NULL;
-- Who marked the host for its current install (told when it ends).
ALTER TABLE hosts ADD COLUMN marked_by INTEGER REFERENCES users (id) ON DELETE SET NULL;
CREATE INDEX hosts_system_template ON hosts (system_template_id);
CREATE INDEX hosts_unattended_template ON hosts (unattended_template_id);
