import json


def handler(event, context):
    """Answers an HTTP trigger with a greeting; echoes other events back."""
    if isinstance(event, dict) and "rawPath" in event:
        return {"statusCode": 200, "headers": {"content-type": "text/plain"}, "body": "Hello FaaS"}
    return {"statusCode": 200, "body": json.dumps({"hello": "FaaS", "event": event})}
