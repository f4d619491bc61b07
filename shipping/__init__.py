"""Ships the image to ECR and drives SageMaker with boto3 (run as `python -m shipping`); never part of the image."""
