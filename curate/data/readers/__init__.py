"""One reader module per dataset format; each returns a LabelTable (see ``curate.data.table``)."""
