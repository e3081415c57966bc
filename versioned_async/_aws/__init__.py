"""The AWS edge: everything that talks to S3, DynamoDB and STS, and nothing else does.

- :mod:`.clients`: :class:`~.clients.AwsClients`, the clients of one open
  repository, each created on first use, all in one exit stack.
- :mod:`.errors`: botocore's errors become the library's (:func:`~.errors.aws_errors`).
- :mod:`.s3`: :class:`~.s3.ObjectStore`, the objects of one bucket;
  :mod:`.s3_upload` (multipart) and :mod:`.s3_params` (request parameters) serve it.
- :mod:`.dynamodb`: :class:`~.dynamodb.Table`, the items of one table.
- :mod:`.sts`: the caller's identity, the default ``actor`` of alias history.

Import from the modules; this package re-exports nothing.
"""
