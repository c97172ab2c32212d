# A launch template for a mayfly job, with no mayfly where Terraform runs: templatefile() fills
# userdata/cloud-config.yaml (the skeleton `mayfly userdata` fills, in Terraform's template syntax) with the job,
# userdata/install.sh and the install route. Start instances from it with
#   aws ec2 run-instances --launch-template LaunchTemplateName=mayfly-resnet-sweep
# or an aws_instance / aws_autoscaling_group that names it.

terraform {
  required_providers {
    aws = { source = "hashicorp/aws", version = ">= 5.0" }
  }
}

variable "ami_id" {
  description = "the image: a Deep Learning AMI, or any Linux with systemd and cloud-init"
  type        = string
}

variable "instance_type" {
  type    = string
  default = "g5.xlarge"
}

variable "instance_profile" {
  description = "the instance role's profile (docs/iam.md): S3 for the job, TerminateInstances on itself"
  type        = string
  default     = "mayfly-instance-role"
}

variable "mayfly_binary" {
  description = "the static build in S3 (aws s3 cp build/static/mayfly s3://...), read with the instance role"
  type        = string
  default     = "s3://my-bucket/tools/mayfly-0.1.0"
}

variable "mayfly_sha256" {
  description = "sha256sum of that binary: the install script checks it before running anything"
  type        = string
}

variable "backstop_seconds" {
  description = "power off this long after boot whatever happens: the job's max_runtime (14h) + 45 minutes"
  type        = number
  default     = 53100
}

locals {
  user_data = templatefile("${path.module}/../../cloud-config.yaml", {
    job              = file("${path.module}/../job.json")
    env              = ""
    backstop_seconds = var.backstop_seconds
    install_sh       = file("${path.module}/../../install.sh")
    install_route    = "binary"
    install_source   = var.mayfly_binary
    install_sha256   = var.mayfly_sha256
    install_region   = ""
  })
}

resource "aws_launch_template" "mayfly" {
  name          = "mayfly-resnet-sweep"
  image_id      = var.ami_id
  instance_type = var.instance_type

  # the agent ends the instance; a power-off (its fallback, the backstop) terminates it too
  instance_initiated_shutdown_behavior = "terminate"

  iam_instance_profile {
    name = var.instance_profile
  }

  # IMDSv2 only; a hop limit of 1 keeps the role's credentials away from containers on the instance
  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }

  instance_market_options {
    market_type = "spot"
    spot_options {
      spot_instance_type             = "one-time"
      instance_interruption_behavior = "terminate"
    }
  }

  tag_specifications {
    resource_type = "instance"
    tags = {
      "mayfly:run" = "resnet-sweep"
      Name         = "resnet-sweep"
    }
  }

  # EC2 takes 16 KB of user-data; above that use base64gzip(local.user_data) (cloud-init reads gzip)
  user_data = base64encode(local.user_data)
}

output "launch_template_id" {
  value = aws_launch_template.mayfly.id
}
