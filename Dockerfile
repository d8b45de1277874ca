# A JupyterHub single-user image with IPC Lab installed, based on an official Jupyter image.
#   docker build -t ipc-lab .
#   docker run --rm -p 8888:8888 --shm-size=1g --init ipc-lab      # to try it alone
# On JupyterHub, use it as singleuser.image (see "Deploying" in README.md).
#
# Students get the course as `labkit build-student` writes it: lessons, exercises and labkit
# with its public checks; never solutions/, tests/ (reference answers), hidden checks or .git.
# The first stage makes that build; only the build reaches the image.
FROM quay.io/jupyter/minimal-notebook:python-3.11 AS build
COPY --chown=${NB_UID}:${NB_GID} . /tmp/course
RUN pip install --no-cache-dir /tmp/course \
 && labkit build-student --root /tmp/course /tmp/student

FROM quay.io/jupyter/minimal-notebook:python-3.11
USER root
# procps gives students `ps`; util-linux (already there) gives `unshare` to the grader.
RUN apt-get update \
 && apt-get install -y --no-install-recommends procps \
 && rm -rf /var/lib/apt/lists/*

USER ${NB_UID}
WORKDIR /home/${NB_USER}/ipc-lab
COPY --from=build --chown=${NB_UID}:${NB_GID} /tmp/student .
RUN pip install --no-cache-dir -e .
