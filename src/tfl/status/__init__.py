"""The operator's status page: facts read from the journal and the operator store, one
HTML page and its JSON, one-time login and action links, and the request handler that the
local server and the Lambda function URL share."""
