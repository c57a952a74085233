"""What every connector's sandbox shares: the TLS server with its fault queue
(:mod:`.server`), the companies one CRM and helpdesk sandbox have in common (:mod:`.world`)
and the billing tables of the SQL and file sandboxes (:mod:`.tabular`).

Sandbox code is for tests, demos and the contract; production code never imports it.
"""
