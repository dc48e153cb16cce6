"""The management API (/manage/v1/): keys, teams, members, invitations, audit log; one module per resource,
on the shared authentication, access check and pagination of base.py. Usage, balance and invoices are
billing's (billing/api.py), under the same prefix.

Every endpoint under orgs/<slug>/ names the action of accounts.permissions it
needs. A caller with no access to the organisation gets 404, as if it did not
exist; a member whose role lacks the action gets 403.
"""
