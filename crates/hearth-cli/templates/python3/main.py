import json


def handler(event, context):
    """Greets the caller: ?name=... on an HTTP trigger, or {"name": ...} as an event."""
    if isinstance(event, dict) and "rawPath" in event:
        name = (event.get("queryStringParameters") or {}).get("name", "world")
        return {"statusCode": 200, "headers": {"content-type": "text/plain"}, "body": f"Hello, {name}!\n"}
    name = event.get("name", "world") if isinstance(event, dict) else "world"
    return {"message": f"Hello, {name}!", "request_id": context.aws_request_id}
