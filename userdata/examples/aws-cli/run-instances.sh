#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# A mayfly job launched with the AWS CLI instead of `mayfly launch`: `mayfly userdata` renders the user-data
# (userdata/cloud-config.yaml filled in), `aws ec2 run-instances` starts the instance with what launch would set:
# terminate on shutdown, IMDSv2 only with a hop limit of 1, the instance role, a one-time spot request (drop the
# --instance-market-options line for on-demand), the mayfly:run tag.
#
#   AMI=ami-0123456789abcdef0 MAYFLY_SHA256=$(sha256sum mayfly | cut -d' ' -f1) sh run-instances.sh [JOB]
#
# The binary comes from S3 (MAYFLY_BINARY, read by the instance role); upload the static build there first:
#   aws s3 cp build/static/mayfly s3://my-bucket/tools/mayfly-0.1.0
set -eu
here=$(dirname "$0")
job=${1:-$here/../job.json}
: "${AMI:?set AMI to the image id (a Deep Learning AMI)}"
: "${MAYFLY_SHA256:?set MAYFLY_SHA256 to the sha256 of the binary in S3}"
mayfly=${MAYFLY:-mayfly}
binary=${MAYFLY_BINARY:-s3://my-bucket/tools/mayfly-0.1.0}
name=$(sed -n 's/^ *"name": *"\([^"]*\)".*/\1/p' "$job" | head -n 1)
user_data=$(mktemp)
trap 'rm -f "$user_data"' EXIT

"$mayfly" check "$job" >/dev/null
"$mayfly" userdata "$job" --install "binary=$binary" --sha256 "$MAYFLY_SHA256" --output "$user_data"

aws ec2 run-instances \
  --image-id "$AMI" \
  --instance-type "${INSTANCE_TYPE:-g5.xlarge}" \
  --count 1 \
  --iam-instance-profile "Name=${INSTANCE_PROFILE:-mayfly-instance-role}" \
  --instance-initiated-shutdown-behavior terminate \
  --metadata-options "HttpTokens=required,HttpEndpoint=enabled,HttpPutResponseHopLimit=1" \
  --instance-market-options "MarketType=spot,SpotOptions={SpotInstanceType=one-time,InstanceInterruptionBehavior=terminate}" \
  --tag-specifications "ResourceType=instance,Tags=[{Key=mayfly:run,Value=$name},{Key=Name,Value=$name}]" \
  --user-data "fileb://$user_data" \
  --query 'Instances[].InstanceId' --output text
