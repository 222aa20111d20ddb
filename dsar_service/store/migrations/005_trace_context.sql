-- The W3C trace context of the call that submitted a request, so that every later step
-- (dispatches, collection, assembly, on any replica) joins the request's trace.
ALTER TABLE requests ADD COLUMN trace_context text NOT NULL DEFAULT '';
