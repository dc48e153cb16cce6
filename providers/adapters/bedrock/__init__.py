"""Amazon Bedrock Runtime: the Converse and ConverseStream APIs.

Configuration:
* the credential's secret is JSON:
  ``{"access_key_id": "AKIA…", "secret_access_key": "…", "session_token": "…"}``
  (``session_token`` only for temporary credentials);
* ``options.region`` (default us-east-1) is the signing region, and fills the
  default base URL ``https://bedrock-runtime.{region}.amazonaws.com``;
* the model's upstream name is the Bedrock model id, inference profile id or ARN.

Every request is signed with SigV4 (service "bedrock") by botocore and sent with
the hub's shared HTTP client. ConverseStream answers with AWS event-stream
binary frames, decoded with botocore's parser.

One module per concern: request.py, response.py, errors.py, embeddings.py (pure translations the tests call
directly), signing.py, stream.py, and adapter.py, which makes the HTTP calls.
"""

from .adapter import BedrockAdapter
from .stream import BedrockStream

__all__ = ["BedrockAdapter", "BedrockStream"]
