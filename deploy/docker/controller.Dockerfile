FROM mcr.microsoft.com/dotnet/sdk:10.0 AS build
WORKDIR /src
COPY . .
RUN dotnet publish controller/Cloud.Controller -c Release -o /out

FROM mcr.microsoft.com/dotnet/aspnet:10.0
WORKDIR /app
COPY --from=build /out .
# The image store (Images:StorePath); a volume mounted here keeps this owner.
RUN mkdir -p /var/lib/cloud/images && chown app /var/lib/cloud/images
USER app
ENTRYPOINT ["dotnet", "Cloud.Controller.dll"]
