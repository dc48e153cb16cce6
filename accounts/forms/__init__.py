"""The dashboard's forms, one module per page: they check input; the services make the change."""
