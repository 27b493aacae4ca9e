// Answers an HTTP trigger with a greeting; echoes other events back.
export const handler = async (event) => {
  if (event && event.rawPath !== undefined) {
    return { statusCode: 200, headers: { "content-type": "text/plain" }, body: "Hello FaaS" };
  }
  return { statusCode: 200, body: JSON.stringify({ hello: "FaaS", event }) };
};
