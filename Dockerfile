# A JupyterHub single-user image with IPC Lab installed, based on an official Jupyter image.
#   docker build -t ipc-lab .
#   docker run --rm -p 8888:8888 --shm-size=1g --init ipc-lab      # to try it alone
# On JupyterHub, use it as singleuser.image (see "Deploying" in README.md).
FROM quay.io/jupyter/minimal-notebook:python-3.11

USER root
# procps gives students `ps`; util-linux (already there) gives `unshare` to the grader.
RUN apt-get update \
 && apt-get install -y --no-install-recommends procps \
 && rm -rf /var/lib/apt/lists/*

USER ${NB_UID}
WORKDIR /home/${NB_USER}/ipc-lab
COPY --chown=${NB_UID}:${NB_GID} . .
# Students get the lessons and the exercises, not the solutions.
RUN pip install --no-cache-dir -e . \
 && rm -rf solutions
