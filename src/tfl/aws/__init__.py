"""The AWS adapters and jobs: DynamoDB journal, SSM bias, Secrets Manager, SNS, metrics, Lambdas.

Modules here import only the standard library and boto3 at module level, so the Lambda
functions (which have boto3 but no NumPy or pandas) can import them.
"""
