// Greets the caller: ?name=... on an HTTP trigger, or {"name": ...} as an event.
export const handler = async (event, context) => {
  if (event && event.rawPath !== undefined) {
    const name = (event.queryStringParameters || {}).name || "world";
    return { statusCode: 200, headers: { "content-type": "text/plain" }, body: `Hello, ${name}!\n` };
  }
  const name = (event && event.name) || "world";
  return { message: `Hello, ${name}!`, request_id: context.awsRequestId };
};
