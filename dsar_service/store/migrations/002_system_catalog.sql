-- What each system returns (datasets, fields, provenance, activities), from its heartbeats,
-- for the archive's data dictionary.
ALTER TABLE systems ADD COLUMN catalog jsonb NOT NULL DEFAULT '[]';
ALTER TABLE systems ADD COLUMN description text NOT NULL DEFAULT '';
